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
        timeout = min(ctx.provider.info.agent_wait_timeout, max(30.0, remaining))
        asyncio.run(self._wait_all(ctx, timeout))

    async def _wait_all(self, ctx, timeout):
        from bayctl.remote import BayShell, KeyRefused
        from bayctl.seed.remote import CurlAgent

        # Asked exactly as seeding will ask (its API through curl, sudo unless root).
        login = ctx.login
        agent = CurlAgent(sudo=login.sudo)
        slaves = ctx.state.slaves
        ready = []
        async with BayShell(ctx.state.nodes, bay_state_dir=ctx.state.directory, ssh_user=login.user,
                            ssh_key=login.key) as shell:

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
                        if ctx.provider.info.refused_key_is_final:
                            break  # the provider installed the key before sshd started: final
                    except NodeError as err:
                        last = str(err)
                    await asyncio.sleep(POLL_SECONDS)
                raise NodeError(f"{node.name}: agent not answering: {last}")

            results = await asyncio.gather(*(one(node) for node in slaves), return_exceptions=True)
        failures = [str(r) for r in results if isinstance(r, BaseException)]
        if failures:
            raise NodeError("; ".join(failures))
