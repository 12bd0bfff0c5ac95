"""Frozen policies evaluated with numpy alone.

A policy is one ``.npz`` (weights + JSON metadata, see ``edgesplit.policies_lite.format``). Load it with
``load_policy(path, available_features=...)``, then ``policy.decide(x)`` or
``policy.decide_from({"feature": value, ...})`` returns an ``EdgeMLAction`` (per-exit thresholds,
cut, action interval) or a ``TaskChoice`` (exit, cut). ``save_policy`` writes the same format.

The one learner that runs on the board is ``LinUCB`` (model selection with late, noisy feedback);
``save_state``/``load_state`` keep its state across restarts.
"""
from edgesplit.policies_lite.decoders import EdgeMLAction, TaskChoice
from edgesplit.policies_lite.errors import PolicyError
from edgesplit.policies_lite.features import features_vector
from edgesplit.policies_lite.format import ACTIVATIONS, FORMAT_VERSION, PolicySpec
from edgesplit.policies_lite.io import (content_id, edgeml_decoder, load_policy, read_policy_file, save_policy,
                                        short_policy_id, task_choice_decoder)
from edgesplit.policies_lite.linucb import LearnerState, LinUCB, LinUCBConfig
from edgesplit.policies_lite.linucb_state import load_state, save_state
from edgesplit.policies_lite.policy import FrozenPolicy

__all__ = ["ACTIVATIONS", "EdgeMLAction", "FORMAT_VERSION", "FrozenPolicy", "LearnerState", "LinUCB", "LinUCBConfig",
           "PolicyError", "PolicySpec",
           "TaskChoice", "content_id", "edgeml_decoder", "features_vector", "load_policy",
           "load_state", "read_policy_file", "save_policy", "save_state", "short_policy_id", "task_choice_decoder"]
