"""Learning EdgeML policies off-board: a virtual-time environment built from the runtime's own parts,
the algorithms that train in it and the baselines they are compared with (issue 12; docs/learning.md)."""
