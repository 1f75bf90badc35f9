# Rules of the demo stage (see README.md).
