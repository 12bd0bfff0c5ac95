"""Model variants of one task: the arms a selector chooses among.

A variant is a verified bundle (fp32, an int8 copy, a smaller model, ...) with the figures the
selector's context needs: its measured accuracy (from the manifest), its MACs and size on disk.
All variants must take the same inputs and give the same outputs, or the choice would change the task.
"""
import os
from dataclasses import dataclass
from typing import List, Sequence, Tuple

from edgesplit.runtime.bundle.store import Bundle, load_bundle
from edgesplit.runtime.errors import BundleError


@dataclass(frozen=True)
class Variant:
    name: str
    bundle: Bundle
    accuracy: float    # expected accuracy with its default thresholds, as measured when it was built
    macs: int          # MACs of the whole model (its last exit)
    size_bytes: int    # bytes of its segment files


def expected_accuracy(bundle: Bundle) -> float:
    """The accuracy its default thresholds gave on test images, else its last exit's accuracy."""
    manifest = bundle.manifest
    thresholds = manifest.provenance.get("thresholds") if isinstance(manifest.provenance, dict) else None
    measured = thresholds.get("test_accuracy_with_defaults") if isinstance(thresholds, dict) else None
    if isinstance(measured, (int, float)) and not isinstance(measured, bool) and 0.0 <= measured <= 1.0:
        return float(measured)
    last = manifest.exits[-1].accuracy if manifest.exits else None
    if last is None:
        raise BundleError("%s: no measured accuracy (provenance.thresholds.test_accuracy_with_defaults or the last "
                          "exit's accuracy): a variant needs one for the selector's context" % bundle.root)
    return float(last)


def variant_name(spec: str) -> str:
    return "default" if spec in ("", "default") else os.path.basename(os.path.normpath(spec))


def load_variants(specs: Sequence[str], default_path: str) -> List[Variant]:
    """Load every bundle named in ``specs`` ("default": the embedded one); refuse duplicates and other tasks."""
    named = []  # type: List[Tuple[str, Bundle]]
    for spec in specs:
        name = variant_name(spec)
        if any(n == name for n, _ in named):
            raise BundleError("model.variants: two variants are named %r (a variant is named after its folder): "
                              "rename one folder" % name)
        named.append((name, load_bundle(default_path if spec in ("", "default") else spec)))
    first_name, first = named[0]
    for name, other in named[1:]:
        for what in ("inputs", "outputs"):
            names = what == "inputs"  # requests feed inputs by name; output names may differ
            want = _signature(getattr(first.manifest, what), names)
            got = _signature(getattr(other.manifest, what), names)
            if want != got:
                raise BundleError("model.variants: %s (%s) has %s %s but %s has %s: variants must be the same task"
                                  % (name, other.root, what, got, first_name, want))
    variants = []
    for name, bundle in named:
        size = sum(os.path.getsize(str(bundle.path_of(s.id))) for s in bundle.manifest.segments)
        variants.append(Variant(name, bundle, expected_accuracy(bundle), bundle.manifest.exits[-1].macs, size))
    return variants


def _signature(specs, names: bool) -> Tuple:
    return tuple(((s.name,) if names else ()) + (s.dtype, tuple(s.shape)) for s in specs)
