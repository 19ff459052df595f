//! A complete LDAE (autoencoder, semantic encoder, shift decoder, semantic statistics) loaded from a model folder or the published files, with encode, invert and decode.
