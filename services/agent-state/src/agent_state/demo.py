"""Demo people for the embedded mode: `await seed_demo(session)`; running it again changes nothing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from agent_state.models import AgentGroup, GroupMember, User
from agent_state.repository import Repository
from agent_state.roles import DEFAULT_ROLES, ROLE_SERVICE
from agent_state.security import Passwords
from callcenter_common.auth import ROLE_ADMIN, ROLE_AGENT, ROLE_DIRECTOR, ROLE_MANAGER, ROLE_TEAM_LEAD
from callcenter_common.clock import Clock, SystemClock

DEMO_PASSWORD = "demo1234"


@dataclass(frozen=True, slots=True)
class DemoUser:
    work_number: str
    name: str
    role: str
    extension: str | None = None
    group: str | None = None


DEMO_GROUPS = ("预约组 Booking", "咨询组 Consultation")

DEMO_USERS = (
    DemoUser("admin", "系统管理员 Admin", ROLE_ADMIN),
    DemoUser("svc-acd", "ACD service account", ROLE_SERVICE),
    DemoUser("9001", "周主任 Director Zhou", ROLE_DIRECTOR),
    DemoUser("9002", "吴经理 Manager Wu", ROLE_MANAGER),
    DemoUser("9101", "郑组长 Lead Zheng", ROLE_TEAM_LEAD, "1101", DEMO_GROUPS[0]),
    DemoUser("9102", "王组长 Lead Wang", ROLE_TEAM_LEAD, "1102", DEMO_GROUPS[1]),
    DemoUser("8001", "李娜 Li Na", ROLE_AGENT, "1001", DEMO_GROUPS[0]),
    DemoUser("8002", "张伟 Zhang Wei", ROLE_AGENT, "1002", DEMO_GROUPS[0]),
    DemoUser("8003", "刘洋 Liu Yang", ROLE_AGENT, "1003", DEMO_GROUPS[0]),
    DemoUser("8004", "陈静 Chen Jing", ROLE_AGENT, "1004", DEMO_GROUPS[1]),
    DemoUser("8005", "杨帆 Yang Fan", ROLE_AGENT, "1005", DEMO_GROUPS[1]),
    DemoUser("8006", "黄丽 Huang Li", ROLE_AGENT, "1006", DEMO_GROUPS[1]),
)


async def seed_demo(
    session: AsyncSession,
    *,
    password: str = DEMO_PASSWORD,
    passwords: Passwords | None = None,
    clock: Clock | None = None,
) -> None:
    """Roles, a director, a manager, two team leads with a group each, six agents (extensions
    1001…1006), an admin and an ACD service account, all with `password`. Idempotent."""
    repo = Repository(session)
    now = (clock or SystemClock()).now()
    await repo.add_missing_roles(DEFAULT_ROLES)
    hasher = passwords or Passwords(time_cost=3, memory_kib=65_536, parallelism=4)
    password_hash: str | None = None
    users: dict[str, User] = {}
    for demo in DEMO_USERS:
        user = await repo.get_user_by_work_number(demo.work_number)
        if user is None:
            password_hash = password_hash or await hasher.hash(password)
            role = next(r for r in DEFAULT_ROLES if r.name == demo.role)
            user = User(
                id=str(uuid.uuid4()),
                work_number=demo.work_number,
                name=demo.name,
                department=role.department.value,
                role=demo.role,
                extension=demo.extension,
                password_hash=password_hash,
                active=True,
                failed_logins=0,
                password_changed_at=now,
                created_at=now,
                updated_at=now,
            )
            repo.add(user)
        users[demo.work_number] = user
    await repo.flush()
    manager = users["9002"]
    for group_name in DEMO_GROUPS:
        group = await repo.get_group_by_name(group_name)
        if group is None:
            lead = next(users[d.work_number] for d in DEMO_USERS if d.group == group_name and d.role == ROLE_TEAM_LEAD)
            group = AgentGroup(
                id=str(uuid.uuid4()),
                name=group_name,
                description="demo",
                team_lead_id=lead.id,
                manager_id=manager.id,
                after_call_work_seconds=None,
                created_at=now,
            )
            repo.add(group)
            await repo.flush()
        for demo in DEMO_USERS:
            member = users[demo.work_number]
            if demo.group == group_name and demo.role == ROLE_AGENT and not await repo.is_member(member.id, group.id):
                repo.add(GroupMember(group_id=group.id, user_id=member.id, signed_in=True, added_at=now))
    await repo.flush()
