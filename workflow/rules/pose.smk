# Rules of the pose stage (see README.md).
