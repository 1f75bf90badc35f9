# Rules of the clips stage (see README.md).
