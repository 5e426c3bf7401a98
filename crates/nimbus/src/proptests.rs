//! Property tests of the project file (being written).
