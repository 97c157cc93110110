"""SQLAlchemy 2 async storage: models, repositories, unit of work, migrations."""
