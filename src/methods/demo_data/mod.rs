//! Procedural datasets for the demo models: synthetic, documented as such, reproducible from a
//! seed.
