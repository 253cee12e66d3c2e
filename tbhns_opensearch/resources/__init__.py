"""Files the package ships (read with importlib.resources, so they work from a wheel too): the index templates
(`index_templates/`, also linked at the repository root) and the Maven POM that lists the OpenSearch
artifacts (`opensearch-artifacts/pom.xml`, also linked under `docker/`)."""
