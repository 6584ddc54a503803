"""quantdesk engine: data, research, ML, risk, execution and runtime. No UI imports."""
