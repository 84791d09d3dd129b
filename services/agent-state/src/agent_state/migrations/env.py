from agent_state.config import AgentStateSettings
from agent_state.models import Base
from callcenter_common.migrations import run_alembic_env

run_alembic_env(Base.metadata, lambda: AgentStateSettings().database_url)
