from pydantic_settings import SettingsConfigDict

from callcenter_common.settings import ServiceSettings


class AgentStateSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AGENT_STATE_", extra="ignore")

    service_name: str = "agent-state"
    database_url: str = "sqlite+aiosqlite:///var/agent_state.db"
