# Rules of the eval stage (see README.md).
