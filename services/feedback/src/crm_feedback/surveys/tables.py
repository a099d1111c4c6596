"""Survey tables. Every version of a survey's questions is kept (`survey_version`), so a response
is read against the questions it answered. Answers may hold personal data: stored sealed
(AES-GCM under `key_id`), bound to their response."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_feedback.tables import metadata

survey = sa.Table(
    "survey",
    metadata,
    sa.Column("survey_id", sa.Text, primary_key=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("kind", sa.SmallInteger, nullable=False),
    sa.Column("channels", pg.ARRAY(sa.SmallInteger), nullable=False),
    sa.Column("touchpoint", sa.Text, nullable=False, server_default=""),
    sa.Column("default_language_code", sa.Text, nullable=False),
    sa.Column("window_start", sa.DateTime(timezone=True)),
    sa.Column("window_end", sa.DateTime(timezone=True)),
    sa.Column("allow_anonymous", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("response_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("creator", sa.Text, nullable=False),
    # The current version of the questions; `revision` is the etag (every change).
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_survey_created_at", "created_at", "survey_id"),
)

survey_version = sa.Table(
    "survey_version",
    metadata,
    sa.Column("survey_id", sa.Text, sa.ForeignKey("survey.survey_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("questions", pg.JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

survey_response = sa.Table(
    "survey_response",
    metadata,
    sa.Column("response_id", sa.Text, primary_key=True),
    sa.Column("survey_id", sa.Text, sa.ForeignKey("survey.survey_id"), nullable=False),
    sa.Column("survey_version", sa.Integer, nullable=False),
    # Empty for an anonymous response.
    sa.Column("customer_id", sa.Text, nullable=False, server_default=""),
    sa.Column("channel", sa.SmallInteger, nullable=False),
    sa.Column("subject", sa.Text, nullable=False, server_default=""),
    sa.Column("answers_sealed", sa.LargeBinary, nullable=False),
    sa.Column("key_id", sa.Text, nullable=False),
    sa.Column("kind", sa.SmallInteger, nullable=False),
    sa.Column("score", sa.SmallInteger, nullable=False),
    sa.Column("nps_category", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("sentiment", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("language_code", sa.Text, nullable=False, server_default=""),
    sa.Column("branch_id", sa.Text, nullable=False, server_default=""),
    sa.Column("touchpoint", sa.Text, nullable=False, server_default=""),
    sa.Column("product", sa.Text, nullable=False, server_default=""),
    sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
    # One response per customer, survey and subject (anonymous responses are not linked).
    sa.Index("uq_survey_response_customer_subject", "survey_id", "customer_id", "subject", unique=True,
             postgresql_where=sa.text("customer_id <> ''")),
    sa.Index("ix_survey_response_submitted_at", "submitted_at", "response_id"),
    sa.Index("ix_survey_response_survey_id", "survey_id", "submitted_at"),
)
