"""The test suite (a package, so that its modules import shared helpers as ``tests.helpers``)."""
