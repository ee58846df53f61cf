#!/usr/bin/env python3
"""CDK entry point: `npx cdk synth '**'` (every environment) or `-c env=dev` (one)."""

from aws_cdk import App

from stacks.app import build_app

app = App()
build_app(app)
app.synth()
