"""The workstation commands, as the ``edgesplit.commands`` entry points name them.

Each is listed by ``edgesplit --help`` without importing its module (torch, onnx, numpy stay unloaded
until the command runs); the module's ``register`` builds the full parser.
"""
from edgesplit.runtime.commands.lazy import LazyCommand

cuts = LazyCommand("cuts", "edgesplit.codegen.cuts_command", "list the valid cut points of an ONNX model (workstation)")
split = LazyCommand("split", "edgesplit.codegen.split_command",
                    "split an ONNX model into a bundle at valid cut points (workstation)")
build_default = LazyCommand("build-default", "edgesplit.codegen.default_model.command",
                            "train the branchy MNIST CNN and write the default bundle (workstation)")
export_tflite = LazyCommand("export-tflite", "edgesplit.codegen.tflite_export",
                            "write a TFLite twin of an onnxruntime bundle (workstation; needs litert-torch)")
build_policy = LazyCommand("build-policy", "edgesplit.codegen.policy_build_command",
                           "build a frozen EdgeML policy from board profiles and exit statistics (off-board)")
bandit = LazyCommand("bandit", "edgesplit.codegen.bandit_command",
                    "contextual-bandit model selection: the seed paper's simulation (LinUCB with late, noisy feedback)")
build_variants = LazyCommand("build-variants", "edgesplit.codegen.variants_command",
                            "build fp32/int8/small/noexit variants of the default bundle for [model] variants (workstation)")
plot = LazyCommand("plot", "edgesplit.codegen.plot_command",
                   "plot one run of a trace database: latency, bandwidth, cut, exit, satisfaction (workstation)")
add_exits = LazyCommand("add-exits", "edgesplit.codegen.exits.command",
                        "train early exits for any ONNX classifier and write its bundle (workstation)")
evaluate = LazyCommand("evaluate", "edgesplit.codegen.learning.evaluate_command",
                       "a trained policy against every baseline and a hindsight oracle on one recording (workstation)")
train = LazyCommand("train", "edgesplit.codegen.learning.train_command",
                    "train an EdgeML policy (--algo ddpg: DDPG, or --algo search: policy search) in the "
                    "virtual-time environment and freeze it (workstation)")
