"""The seeds' Keras networks, for checking ``ferkit import-keras`` against real Keras (run in ``.venv-keras``
by tools/check_keras_import.py, never by ferkit).

The layer stacks are copied from the seed texts in ../shared/seeds/ (third-party code, quoted for this check):
seed 000 ``cnn_model`` (000_67c2778e649086f2.txt), seed 002 ``cnn_model`` (002_b56987ac3e3db84b.txt), seed 003
``emotion_model`` (003_ae0cc8e88f9fd851.txt). Seed 001 prints no code, only its Keras summary and a layer list
(001_882f868cd8a65383.txt): ``seed001`` rebuilds that summary with the choices ferkit's ``seed001_cnn`` makes
(ReLU in the convolution, BatchNorm after it, a 4x4 pool of stride 2). The two ``tiny_*`` networks are made here
for the test fixtures: every layer kind the importer converts, in a few kilobytes.
"""

from __future__ import annotations

from tensorflow.keras import Input, Model, regularizers
from tensorflow.keras.layers import (Activation, Add, BatchNormalization, Conv2D, Dense, Dropout, Flatten,
                                     GlobalAveragePooling2D, MaxPool2D, MaxPooling2D, SeparableConv2D)
from tensorflow.keras.models import Sequential


def seed000():
    """Seed 000's ``cnn_model()``, verbatim."""
    model = Sequential()
    model.add(Conv2D(32, kernel_size=(3, 3), padding='same', activation='relu', input_shape=(48, 48, 1)))
    model.add(Conv2D(64, (3, 3), padding='same', activation='relu'))
    model.add(BatchNormalization())
    model.add(MaxPool2D(pool_size=(2, 2)))
    model.add(Dropout(0.25))
    model.add(Conv2D(128, (5, 5), padding='same', activation='relu'))
    model.add(BatchNormalization())
    model.add(MaxPool2D(pool_size=(2, 2)))
    model.add(Dropout(0.25))

    model.add(Conv2D(512, (3, 3), padding='same', activation='relu', kernel_regularizer=regularizers.l2(0.01)))
    model.add(BatchNormalization())
    model.add(MaxPool2D(pool_size=(2, 2)))
    model.add(Dropout(0.25))
    model.add(Conv2D(512, (3, 3), padding='same', activation='relu', kernel_regularizer=regularizers.l2(0.01)))
    model.add(BatchNormalization())
    model.add(MaxPool2D(pool_size=(2, 2)))
    model.add(Dropout(0.25))
    model.add(Conv2D(512, (3, 3), padding='same', activation='relu', kernel_regularizer=regularizers.l2(0.01)))
    model.add(BatchNormalization())
    model.add(MaxPool2D(pool_size=(2, 2)))
    model.add(Dropout(0.25))
    model.add(Flatten())
    model.add(Dense(256, activation='relu'))
    model.add(BatchNormalization())
    model.add(Dropout(0.25))

    model.add(Dense(512, activation='relu'))
    model.add(BatchNormalization())
    model.add(Dropout(0.25))
    model.add(Dense(7, activation='softmax'))
    return model


def seed001():
    """Seed 001's Keras summary (1,049,159 parameters), layer by layer."""
    model = Sequential()
    model.add(Conv2D(32, kernel_size=(3, 3), activation='relu', input_shape=(48, 48, 1)))
    model.add(BatchNormalization())
    model.add(MaxPooling2D(pool_size=(4, 4), strides=(2, 2)))
    model.add(Dropout(0.25))
    model.add(Conv2D(64, kernel_size=(3, 3), padding='same', activation='relu'))
    model.add(BatchNormalization())
    model.add(Conv2D(64, kernel_size=(3, 3), padding='same', activation='relu'))
    model.add(BatchNormalization())
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Dropout(0.25))
    model.add(Flatten())
    model.add(Dense(128, activation='relu'))
    model.add(BatchNormalization())
    model.add(Dropout(0.5))
    model.add(Dense(7, activation='softmax'))
    return model


def seed002():
    """Seed 002's ``cnn_model``, verbatim."""
    cnn_model = Sequential()

    # 1st convolution layer
    cnn_model.add(Conv2D(64, input_shape=(48, 48, 1), kernel_size=(3, 3), activation='relu'))
    cnn_model.add(BatchNormalization())
    cnn_model.add(Conv2D(64, padding='same', kernel_size=(3, 3), activation='relu'))
    cnn_model.add(BatchNormalization())
    cnn_model.add(MaxPool2D(pool_size=(3, 3), strides=(2, 2)))
    cnn_model.add(Dropout(0.3))

    # 2nd convolution layer
    cnn_model.add(Conv2D(128, padding='same', kernel_size=(3, 3), activation='relu'))
    cnn_model.add(BatchNormalization())
    cnn_model.add(Conv2D(128, padding='same', kernel_size=(3, 3), activation='relu'))
    cnn_model.add(BatchNormalization())
    cnn_model.add(MaxPool2D(pool_size=(3, 3), strides=(2, 2)))
    cnn_model.add(Dropout(0.3))

    # 3rd convolution layer
    cnn_model.add(Conv2D(256, padding='same', kernel_size=(3, 3), activation='relu'))
    cnn_model.add(BatchNormalization())
    cnn_model.add(Conv2D(256, padding='same', kernel_size=(3, 3), activation='relu'))
    cnn_model.add(BatchNormalization())
    cnn_model.add(MaxPool2D(pool_size=(3, 3), strides=(2, 2)))
    cnn_model.add(Dropout(0.3))

    # 4th convolution layer
    cnn_model.add(Conv2D(512, padding='same', kernel_size=(3, 3), activation='relu'))
    cnn_model.add(BatchNormalization())
    cnn_model.add(Conv2D(512, padding='same', kernel_size=(3, 3), activation='relu'))
    cnn_model.add(BatchNormalization())
    cnn_model.add(MaxPool2D(pool_size=(3, 3), strides=(2, 2)))
    cnn_model.add(Dropout(0.3))

    # Fully connected layer
    cnn_model.add(Flatten())
    cnn_model.add(Dense(512, activation='relu'))
    cnn_model.add(Dropout(0.3))
    cnn_model.add(Dense(256, activation='relu'))
    cnn_model.add(Dropout(0.3))
    cnn_model.add(Dense(64, activation='relu'))
    cnn_model.add(Dropout(0.3))

    cnn_model.add(Dense(7, activation='softmax'))
    return cnn_model


def seed003():
    """Seed 003's ``emotion_model``, verbatim."""
    emotion_model = Sequential()

    emotion_model.add(Conv2D(32, kernel_size=(3, 3), activation='relu',
                             input_shape=(48, 48, 1)))
    emotion_model.add(Conv2D(64, kernel_size=(3, 3), activation='relu'))
    emotion_model.add(MaxPooling2D(pool_size=(2, 2)))
    emotion_model.add(Dropout(0.25))

    emotion_model.add(Conv2D(128, kernel_size=(3, 3), activation='relu'))
    emotion_model.add(MaxPooling2D(pool_size=(2, 2)))
    emotion_model.add(Conv2D(128, kernel_size=(3, 3), activation='relu'))
    emotion_model.add(MaxPooling2D(pool_size=(2, 2)))
    emotion_model.add(Dropout(0.25))

    emotion_model.add(Flatten())
    emotion_model.add(Dense(1024, activation='relu'))
    emotion_model.add(Dropout(0.5))
    emotion_model.add(Dense(7, activation='softmax'))
    return emotion_model


def tiny_sequential():
    """12x12 grey, 3 classes: convolution, BatchNorm on an image and on a flattened vector, dense layers."""
    return Sequential([
        Conv2D(4, 3, activation='relu', input_shape=(12, 12, 1)), BatchNormalization(), MaxPooling2D(2),
        Flatten(), BatchNormalization(), Dense(8, activation='relu'), Dropout(0.5), Dense(3, activation='softmax'),
    ])


def tiny_functional():
    """12x12 grey, 3 classes, mini-Xception's kinds of layer: a residual module of a separable convolution and a
    'same' stride-2 max-pool beside a strided 1x1 convolution, then a convolution to the classes and GAP."""
    inputs = Input((12, 12, 1))
    x = Activation('relu')(BatchNormalization()(Conv2D(4, 3, use_bias=False)(inputs)))
    residual = BatchNormalization()(Conv2D(8, 1, strides=2, padding='same', use_bias=False)(x))
    x = BatchNormalization()(SeparableConv2D(8, 3, padding='same', use_bias=False)(x))
    x = Add()([MaxPooling2D(3, strides=2, padding='same')(x), residual])
    x = GlobalAveragePooling2D()(Conv2D(3, 3, padding='same')(x))
    return Model(inputs, Activation('softmax')(x))


SEEDS = {"seed000": seed000, "seed001": seed001, "seed002": seed002, "seed003": seed003}
