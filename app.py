#!/usr/bin/env python3
"""CDK entry point: read the configuration from context, define the stack, run cdk-nag."""

import sys

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks.chat_stack import RagChatStack
from stacks.config import ConfigError, DeploymentConfig
from stacks.nag import acknowledge_findings

app = cdk.App()
try:
    config = DeploymentConfig.from_context(app.node.get_all_context())
    stack = RagChatStack(app, config.stack_name, config=config)
except ConfigError as error:
    sys.exit(f"Invalid configuration: {error}")
acknowledge_findings(stack)
cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
app.synth()
