# Rules of the download stage (see README.md).
