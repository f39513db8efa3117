"""Media core: RTP/RTCP packets, statistics, codecs, jitter buffer and DTMF (sans-I/O)."""
