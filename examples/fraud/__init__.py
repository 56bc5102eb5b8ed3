"""The fraud example: its synthetic data generator and its end-to-end demo.

The example's Feast repo is ``feature_repo/`` at the top of the project; the platform never imports
this package.
"""
