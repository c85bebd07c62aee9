// The reference's server-side snippets (websocket-event-types.md, "Event Emission Examples" and
// "Broadcasting Options"), as written there; only the surrounding functions and the values the
// snippets take from the application (`order`, `product`, `orderData` ...) are added.

import { emitInventoryEvent, emitOrderEvent, wsEvents } from "./events.js";

/** "Server-Side". */
export function serverSide(): void {
  // Order created
  wsEvents.orderCreated({
    orderId: 'ORD-001',
    customerId: 'CUST-123',
    customerName: 'John Doe',
    total: 1500,
    status: 'pending',
    channel: 'online'
  });

  // Inventory low stock
  wsEvents.inventoryAlert({
    productId: 'PROD-456',
    productName: 'Wireless Headphones',
    sku: 'WH-001',
    currentStock: 5,
    threshold: 10,
    severity: 'critical'
  });

  // System notification
  wsEvents.systemNotification({
    title: 'Server Maintenance',
    message: 'System will be down for maintenance',
    severity: 'warning',
    targetRoles: ['admin']
  });
}

/** "Using Helpers". */
export function usingHelpers(
  order: { id: string; customerId: string; customerName: string; total: number; status: "pending"; channel: string },
  product: { id: string; name: string; sku: string },
): void {
  // In your API route
  emitOrderEvent('created', {
    id: order.id,
    customerId: order.customerId,
    customerName: order.customerName,
    total: order.total,
    status: order.status,
    channel: order.channel
  });

  emitInventoryEvent('updated', {
    id: product.id,
    name: product.name,
    sku: product.sku,
    oldStock: 50,
    newStock: 49,
    reason: 'sale'
  });
}

/** "Broadcasting Options". */
export function broadcasting(
  orderData: Parameters<typeof wsEvents.orderCreated>[0],
  statusData: Parameters<typeof wsEvents.orderStatusChanged>[0],
  notificationData: Parameters<typeof wsEvents.systemNotification>[0],
  productData: Parameters<typeof wsEvents.productUpdated>[0],
): void {
  // Only send to admins and managers
  wsEvents.orderCreated(orderData, {
    roles: ['admin', 'manager']
  });

  // Send to specific users only
  wsEvents.orderStatusChanged(statusData, {
    userIds: ['customer_123']
  });

  // Broadcast to all subscribers of a namespace
  wsEvents.systemNotification(notificationData, {
    namespace: 'system'
  });

  // Exclude certain users
  wsEvents.productUpdated(productData, {
    excludeUserIds: ['user_456']
  });
}
