"""Running programs: the local and RPC runners, the numerical check, the machine's peaks."""
