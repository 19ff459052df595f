//! The sprite demo pair: encode a held-out sprite set with two demo models into aligned collections.
