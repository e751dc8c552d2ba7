//! aetrain: fits the models aecodec uses.
