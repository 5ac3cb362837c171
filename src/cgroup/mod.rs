//! Per-sandbox cgroups, v2 and v1 (DESIGN §5).
