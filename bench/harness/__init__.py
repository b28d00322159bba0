"""What the suites drive, usable from a REPL or a script too: the processes under
test (relay.py), the measurements (measure.py: kernel stamps, percentiles, CPU),
and the rigs: the fan-out rig (fanout.py), client fleets (chatrig.py, v2load.py),
the cluster deployment (cluster_rig.py), the broker measurements (broker.py)."""
