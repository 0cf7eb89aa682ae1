"""``labctl local``: the planned lab rehearsed on this machine with network namespaces, nftables and real servers.

One module per job:

- ``topology``  what the offline plan declared, as hosts, addresses, routes and security rules (pure);
- ``nft``       security lists/NSGs and the internet gateway as nftables rulesets (pure text);
- ``netns``     namespaces, veth links, routes and rulesets made real, and TCP probes from inside them;
- ``servers``   sshd (the app VM) and MariaDB with TLS (the DB system) started from a per-run folder;
- ``envstep``   the real EnvFile provider, served through the SDK's provider host, run in the internet namespace;
- ``verdicts``  every reachability verdict of ``labctl plan`` re-tested with real TCP connects;
- ``drills``    ``--break FAULT``: the declared resources changed the way students break them;
- ``command``   ``labctl local up|check|down|rules``: the run, its state file and its clean-up.
"""
