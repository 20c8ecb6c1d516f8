"""Packaging lives in setup.cfg; this file lets legacy tools run ``setup.py``."""

from setuptools import setup

setup()
