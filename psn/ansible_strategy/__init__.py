"""The strategy plugin the runner gives Ansible (ANSIBLE_STRATEGY_PLUGINS points here)."""
