//! Zero-shot stitching: a head trained on one space's relative representations applied to another's.
