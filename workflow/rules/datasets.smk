# Rules of the datasets stage (see README.md).
