"""fastbp's benchmarks: the asv suite (``benchmarks.py``), the shared workload definitions
(``workloads.py``) and the peer comparison runner (``compare_peers.py``, ``peers/``)."""
