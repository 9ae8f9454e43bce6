"""Query expanders (one file per method; each registers itself with `@register_expander`)."""
