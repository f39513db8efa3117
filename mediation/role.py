"""The mediation role: its CLI commands and its installation on a server."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING, Any

from twisted.internet import task

from confserver.adapters.sip.endpoint import Target
from confserver.config import Config
from confserver.storage.access_numbers import AccessNumberDirectory
from confserver.storage.bindings import BindingStore
from confserver.storage.database import Database
from confserver.storage.errors import StorageError
from confserver.storage.users import UserDirectory

from . import cli
from .b2bua import GatewayRouter, Mediation, OutboundRouter
from .demo import install_demo_routing
from .gateways import GatewayError, parse_address
from .models import RECORD_HEARTBEAT
from .store import MediationConfig, MediationError, MediationStore
from .trunks import GatewayProber, TrunkRegistrations

if TYPE_CHECKING:
    from confserver.process import Server

log = logging.getLogger("switchboard.mediation")
CONFIG_POLL = 2.0  # seconds between checks for configuration changes (probes, trunks)


def apply_gateways(server: Server, snapshot: MediationConfig) -> None:
    """What the transports must know of the gateways (each time they change): their
    traffic is bounded by their own max_calls, not the per-address rates; outgoing TLS
    skips the certificate check only for those set so (warned about, as is SRTP whose
    keys would cross the network readable)."""
    gateways = snapshot.gateways.values()
    limits = server.endpoint.limits
    if limits is not None:
        limits.trusted_hosts = {g.host for g in gateways}
    unverified = {g.host for g in gateways if g.transport == "tls" and not g.tls_verify}
    for stream in server.streams:
        if stream.name == "tls":
            stream.unverified_hosts = unverified
    for gateway in gateways:
        if gateway.transport == "tls" and not gateway.tls_verify:
            log.warning("gateway %s: its TLS certificate is not checked (tls_verify = false)",
                        gateway.name)
        if gateway.sends_keys_in_clear:
            log.warning("gateway %s: SRTP over %s would send the SDES keys readable: %s",
                        gateway.name, gateway.transport,
                        "sent anyway (srtp_keys_in_clear = true)" if gateway.srtp_keys_in_clear
                        else "SRTP is not offered (use transport tls, or set "
                             "srtp_keys_in_clear = true)")


class MediationRole:
    name = "mediation"

    def add_commands(self, commands: Any, common: argparse.ArgumentParser) -> None:
        cli.add_commands(commands, common)

    def demo_data(self, db: Database, config: Config) -> list[str]:
        return install_demo_routing(db, config)

    def install(self, server: Server) -> None:
        config = server.config
        next_hop = None
        if config.mediation_next_hop:
            try:
                host, port = parse_address(config.mediation_next_hop)
            except GatewayError as exc:
                raise RuntimeError(f"[mediation] next_hop: {exc}") from exc
            next_hop = Target("udp", host, port)
        mediation = Mediation(server.app, MediationStore(server.db), UserDirectory(server.db),
                              AccessNumberDirectory(server.db), BindingStore(server.db),
                              server.app.registrar, site=config.mediation_site,
                              next_hop=next_hop)
        prober = GatewayProber(mediation)
        trunks = TrunkRegistrations(mediation)
        mediation.on_config += [prober.reconfigure, trunks.reconfigure,
                                lambda snapshot: apply_gateways(server, snapshot)]
        server.app.routers.insert(0, GatewayRouter(mediation))
        server.app.routers.append(OutboundRouter(mediation))

        def poll() -> None:
            try:
                mediation.reload()
            except (StorageError, MediationError) as exc:
                log.error("mediation configuration not reloaded: %s", exc)

        poller = task.LoopingCall(poll)
        poller.clock = server.reactor
        poller.start(CONFIG_POLL, now=True)
        heartbeat = task.LoopingCall(mediation.touch_records)
        heartbeat.clock = server.reactor
        heartbeat.start(RECORD_HEARTBEAT, now=False)
        server.on_stop += [poller.stop, heartbeat.stop, prober.stop, trunks.stop,
                           mediation.flush_records]
        server.roles[self.name] = mediation
