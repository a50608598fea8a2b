from ninja import NinjaAPI

api = NinjaAPI(title="Piaowu API", version="1", urls_namespace="api")
