"""Ways to fuse the ranked lists of a multi-vector query into one ranking: one file per method, each registering
itself with `@register_fuser` (the fusers registry finds every module of this package; no list to keep here)."""
