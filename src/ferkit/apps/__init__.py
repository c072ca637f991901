"""User-facing jobs built on the inference layer: predicting on files, video, webcam and the HTTP server."""
