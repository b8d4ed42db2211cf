"""Custom TFX components, one module each (spec, component, executor): what the pipeline runs that TFX does not ship."""
