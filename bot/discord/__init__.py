"""The Discord wing, below the cogs: what every cog shares to talk to Discord.

- `client.py`: `OpsBot`, which loads the extensions it is given and syncs the commands;
- `gate.py`: the one check every interaction passes (who acts, the permission table, the
  lockout) and the audit hook that records how it ended;
- `policy.py`: the one error policy, and the command tree that sends commands through the gate;
- `components.py`: ONE persistent base for buttons and select menus (custom_id from the action);
- `sending.py`: Discord's limits, mentions, replies, nonces;
- `outbound/`: the outbox's Discord handlers (notices, roles, incident cards) and the one
  classification of Discord's errors.

Nothing here imports a cog (the cogs import it), and the client, the gate and the policy never
import each other at run time: the gate knows nothing of the client, the client owns a gate.
"""
