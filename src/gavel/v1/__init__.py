"""Generated from proto/gavel/v1 by .ci/generate-proto; do not edit."""
