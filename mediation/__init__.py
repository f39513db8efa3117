"""Mediation server: gateways, SIP trunks, dial plans and routing."""
