"""``python -m schema``: write the SDL snapshot ``schema/schema.graphql`` from the types."""

from schema import SDL_PATH, schema

SDL_PATH.write_text(schema.as_str() + "\n", encoding="utf-8")
print(f"wrote {SDL_PATH.name}")
