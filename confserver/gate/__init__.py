"""The one gate every call the server places passes, sans-I/O (``destination``): where
a REFER, a meeting's dial-out, an escalation or a transfer may send a call."""
