"""Choosing among model variants of one task per request: the contextual bandit of seed paper 000.

``variants`` loads and checks the bundles (one task, different trade-offs) and their features;
``selector`` holds the LinUCB learner (``policies_lite.linucb``), builds each arm's context from the
variant and the live device, and turns late ratings into updates. See docs/bandit.md.
"""
