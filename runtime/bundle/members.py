"""The names a bundle may hold, and the caps its reader applies before trusting anything.
One definition: the writer, the reader and the consistency checks all use these."""
from runtime.bundle.signing import SIGNATURE

MANIFEST = "manifest.json"
MODEL = "model.onnx"
INDEX = "index.hnsw"          # schema 1-2: hnswlib's file, vectors included
GRAPH = "index.graph"         # schema 3: the same without the vectors (refs.npy holds them)
REFS = "refs.npy"
REFS_SCALE = "refs_scale.npy"  # schema 3: refs.npy holds int8, row i is refs[i] * scale[i]
LABELS = "labels.json"
CODES = "codes.npy"          # optional: packed ITQ codes (N x bits/8 uint8)
ITQ_PROJ = "itq_proj.npy"    # optional: ITQ projection (D x bits float32)
ITQ_MEAN = "itq_mean.npy"    # optional: ITQ centring (D float32)
VERIFY_KPTS = "verify_kpts.npy"      # optional: local feature keypoints of references
VERIFY_DESC = "verify_desc.npy"      # optional: their descriptors
VERIFY_OFFSETS = "verify_offsets.npy"  # optional: row offsets into the two above
VERIFY_PCA = "verify_pca.npy"        # schema 4, optional: verify_desc.npy holds codes of this PCA basis
VERIFY_STEER = "verify_steer.npy"    # schema 5, optional: quarter-turned rows are the upright ones steered
VERIFY_CHROMA = "verify_chroma.npy"  # schema 6, optional: int8 (a*, b*) per reference keypoint
LOCAL_MODEL = "local.onnx"   # optional: learned local features (XFeat) for verification
GLUE_MODEL = "glue.onnx"     # optional: learned matcher (LighterGlue) for XFeat features
REQUIRED_MEMBERS = (MODEL, REFS, LABELS)  # and one of INDEX / GRAPH
MAX_MEMBER_BYTES = 4 << 30   # refuse to inflate anything larger (zip bombs, crafted sizes)
MAX_TOTAL_BYTES = 8 << 30
MEMBERS = (MODEL, INDEX, GRAPH, REFS, REFS_SCALE, LABELS, CODES, ITQ_PROJ, ITQ_MEAN, VERIFY_KPTS, VERIFY_DESC, VERIFY_OFFSETS,
           VERIFY_PCA, VERIFY_STEER, VERIFY_CHROMA, LOCAL_MODEL, GLUE_MODEL)   # every name a bundle may hold besides manifest.json and signature.json
MAX_MEMBERS = 32                  # a bundle holds at most len(MEMBERS) + 2 entries; more is not a bundle
MAX_MANIFEST_BYTES = 16 << 20     # read before anything is trusted: a manifest of 10k works is ~2-3 MB
MAX_SIGNATURE_BYTES = 64 << 10
