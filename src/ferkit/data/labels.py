"""Class names of the label sets ferkit knows."""

FER2013_CLASSES: tuple[str, ...] = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
"""FER2013 label order: 0=Angry ... 6=Neutral."""

FERPLUS_CLASSES: tuple[str, ...] = (
    "Neutral", "Happiness", "Surprise", "Sadness", "Anger", "Disgust", "Fear", "Contempt",
)
"""FER+ emotion order, as in Microsoft's fer2013new.csv vote columns."""

IMAGE_SIZE = 48
