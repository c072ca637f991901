"""User-facing jobs built on the inference layer: predicting on files (later: video, webcam, server)."""
