"""Commands: the simulators, and the outbound kill switch."""
