#[tokio::main]
async fn main() -> anyhow::Result<()> {
    orderflow_runtime::main::<orderflow_inventory::InventoryService>().await
}
