"""Wait until every slave's node agent answers, asked over SSH as seeding will ask it.

On a cloud the servers are ACTIVE long before cloud-init has started the agent; locally the
agents are up already and this is one round of checks.
"""

import asyncio
import time

from bayctl.create.steps import Step
from bayctl.errors import NodeError

POLL_SECONDS = 3.0


class WaitForAgents(Step):
    name = "wait-for-agents"
    title = "Waiting for the slaves' agents"

    def run(self, ctx):
        remaining = ctx.spec.timeout - (time.monotonic() - ctx.started)
        timeout = min(60.0 if ctx.is_local else 900.0, max(30.0, remaining))
        asyncio.run(self._wait_all(ctx, timeout))

    async def _wait_all(self, ctx, timeout):
        from bayctl.remote import BayShell, KeyRefused
        from bayctl.seed.remote import CurlAgent

        # Asked exactly as seeding will ask (its API through curl, sudo unless root).
        agent = CurlAgent(sudo=ctx.ssh_user != "root")
        slaves = ctx.slaves
        ready = []
        async with BayShell(ctx.nodes, bay_state_dir=ctx.state.directory, ssh_user=ctx.ssh_user,
                            ssh_key=ctx.ssh_key) as shell:

            async def one(node):
                deadline = time.monotonic() + timeout
                last = "no answer"
                while time.monotonic() < deadline:
                    try:
                        done = await shell.run(node.name, agent.show_command(), timeout=30)
                        agent.parse_digest(done.exit_status, done.stdout, done.stderr)
                        ready.append(node.name)
                        ctx.status.update(f"{node.name} agent answers", len(ready), len(slaves))
                        return
                    except KeyRefused as err:
                        last = str(err)
                        if ctx.is_local:
                            break  # the local provider installed the key before sshd started: final
                    except NodeError as err:
                        last = str(err)
                    await asyncio.sleep(POLL_SECONDS)
                raise NodeError(f"{node.name}: agent not answering: {last}")

            results = await asyncio.gather(*(one(node) for node in slaves), return_exceptions=True)
        failures = [str(r) for r in results if isinstance(r, BaseException)]
        if failures:
            raise NodeError("; ".join(failures))
